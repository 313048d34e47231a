"""SMS Delivery Ledger: an event-sourced record of what happened to every SMS."""
