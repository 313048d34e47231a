"""Traffic simulator: drives a running ledger and checks it against a ground truth.

:mod:`ledger.simulate.plan` generates seeded message scripts, and
:mod:`ledger.simulate.truth` computes from each script the state the ledger
must reach. Both are pure. :mod:`ledger.simulate.driver` sends the scripts over
gRPC, and :mod:`ledger.simulate.compare` and :mod:`ledger.simulate.report`
check and summarize the result.
"""
