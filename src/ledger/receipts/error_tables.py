"""Error tables: whether a failure code is permanent or transient, per source.

Each table maps a canonical code (see :func:`canonical_code`) to True
(permanent: a retry of the same message fails again), False (transient: retry
with back-off) or None (the code does not tell). A code missing from its table
also gives None, so the receipt's status alone decides.

Which code is permanent is retry policy, not a fact of the network, so the
tables are plain data here and carry a version that the ledger stores with
each classification. Profiles override single codes with ``permanent_codes``
and ``transient_codes``.

Sources: 3GPP TS 29.002 MAP error values, the SMPP 3.4 command_status list
(section 5.1.3), and the error-code pages of Twilio (SMPP and Programmable
Messaging), Vonage, Plivo, Sinch, Infobip, AWS End User Messaging and Bird.
The permanence column is the ledger's own reading of each description.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "ERROR_TABLES",
    "ERROR_TABLES_VERSION",
    "SMPP_COMMAND_STATUS_NAMES",
    "canonical_code",
    "classify_code",
]

ERROR_TABLES_VERSION = "2026-12"

# Longer codes are compared as text: no table has numbers this long, and
# converting very long digit strings to int is slow.
_MAX_NUMERIC_CODE_LENGTH = 20

# MAP error values as SMSCs report them in `err` or network_error_code type 3.
_GSM_MAP: dict[str, bool | None] = {
    "1": True,  # unknownSubscriber: number not allocated
    "5": False,  # unidentifiedSubscriber: stale VLR registration
    "6": False,  # absentSubscriberSM: phone off or out of coverage
    "9": True,  # illegalSubscriber: authentication failed
    "10": True,  # bearerServiceNotProvisioned
    "11": True,  # teleserviceNotProvisioned: no SMS on the subscription
    "12": True,  # illegalEquipment: IMEI barred
    # callBarred needs operator or subscriber action, so automatic retries fail;
    # the number itself may work again later.
    "13": True,
    "21": False,  # facilityNotSupported: visited network cannot do MT SMS
    "27": False,  # absentSubscriber: IMSI detached or purged
    "31": False,  # subscriberBusyForMT-SMS
    "32": False,  # sm-DeliveryFailure, usually memory capacity exceeded
    "33": False,  # messageWaitingListFull
    "34": False,  # systemFailure
    "35": False,  # dataMissing
    "36": False,  # unexpectedDataValue
}

# Twilio's SMPP `err` table, where 001 and 005 mean the opposite of MAP.
_TWILIO_SMPP: dict[str, bool | None] = {
    "1": False,  # absent subscriber
    "2": False,  # handset memory capacity exceeded
    "3": False,  # equipment protocol error
    "4": True,  # equipment not SM-equipped
    "5": True,  # unknown subscriber
    "6": True,  # illegal subscriber
    "7": True,  # teleservice not provisioned
    "8": True,  # illegal equipment
    "9": True,  # call barred by the operator
    "10": False,  # facility not supported
    "11": False,  # subscriber busy for MT SMS
    "12": False,  # system failure
}

# SMPP 3.4 command_status values, as decimal text of the value.
SMPP_COMMAND_STATUS_NAMES: Mapping[str, int] = {
    "ESME_ROK": 0x00,
    "ESME_RINVMSGLEN": 0x01,
    "ESME_RINVCMDLEN": 0x02,
    "ESME_RINVCMDID": 0x03,
    "ESME_RINVBNDSTS": 0x04,
    "ESME_RALYBND": 0x05,
    "ESME_RINVPRTFLG": 0x06,
    "ESME_RINVREGDLVFLG": 0x07,
    "ESME_RSYSERR": 0x08,
    "ESME_RINVSRCADR": 0x0A,
    "ESME_RINVDSTADR": 0x0B,
    "ESME_RINVMSGID": 0x0C,
    "ESME_RBINDFAIL": 0x0D,
    "ESME_RINVPASWD": 0x0E,
    "ESME_RINVSYSID": 0x0F,
    "ESME_RCANCELFAIL": 0x11,
    "ESME_RREPLACEFAIL": 0x13,
    "ESME_RMSGQFUL": 0x14,
    "ESME_RINVSERTYP": 0x15,
    "ESME_RINVNUMDESTS": 0x33,
    "ESME_RINVDLNAME": 0x34,
    "ESME_RINVDESTFLAG": 0x40,
    "ESME_RINVSUBREP": 0x42,
    "ESME_RINVESMCLASS": 0x43,
    "ESME_RCNTSUBDL": 0x44,
    "ESME_RSUBMITFAIL": 0x45,
    "ESME_RINVSRCTON": 0x48,
    "ESME_RINVSRCNPI": 0x49,
    "ESME_RINVDSTTON": 0x50,
    "ESME_RINVDSTNPI": 0x51,
    "ESME_RINVSYSTYP": 0x53,
    "ESME_RINVREPFLAG": 0x54,
    "ESME_RINVNUMMSGS": 0x55,
    "ESME_RTHROTTLED": 0x58,
    "ESME_RINVSCHED": 0x61,
    "ESME_RINVEXPIRY": 0x62,
    "ESME_RINVDFTMSGID": 0x63,
    "ESME_RX_T_APPN": 0x64,
    "ESME_RX_P_APPN": 0x65,
    "ESME_RX_R_APPN": 0x66,
    "ESME_RQUERYFAIL": 0x67,
    "ESME_RINVOPTPARSTREAM": 0xC0,
    "ESME_ROPTPARNOTALLWD": 0xC1,
    "ESME_RINVPARLEN": 0xC2,
    "ESME_RMISSINGOPTPARAM": 0xC3,
    "ESME_RINVOPTPARAMVAL": 0xC4,
    "ESME_RDELIVERYFAILURE": 0xFE,
    "ESME_RUNKNOWNERR": 0xFF,
}

# NOTE: only the statuses below are classified; other command_status values
# give None until someone decides their retry policy.
_SMPP_COMMAND_STATUS: dict[str, bool | None] = {
    "1": True,  # ESME_RINVMSGLEN
    "8": False,  # ESME_RSYSERR
    "10": True,  # ESME_RINVSRCADR
    "11": True,  # ESME_RINVDSTADR
    "20": False,  # ESME_RMSGQFUL
    "69": None,  # ESME_RSUBMITFAIL
    "88": False,  # ESME_RTHROTTLED: back off
    "98": True,  # ESME_RINVEXPIRY: the request must change
    "100": False,  # ESME_RX_T_APPN
    "101": True,  # ESME_RX_P_APPN
    "255": None,  # ESME_RUNKNOWNERR
}

# Twilio Programmable Messaging ErrorCode values.
_TWILIO: dict[str, bool | None] = {
    "30001": False,  # queue overflow
    "30002": True,  # account suspended
    "30003": False,  # unreachable handset
    "30004": True,  # blocked (opt-out, blocklist)
    "30005": True,  # unknown destination handset
    "30006": True,  # landline or unreachable carrier
    "30007": True,  # carrier filtering: the same content fails again
    "30008": None,  # unknown error: the cause cannot be determined
    "30009": False,  # missing segment
    "30010": True,  # price exceeds MaxPrice
    "30011": True,  # MMS not supported
    "30024": True,  # numeric sender id not provisioned
    "21610": True,  # recipient unsubscribed
}

# Vonage SMS API `err-code` values.
_VONAGE: dict[str, bool | None] = {
    "1": None,  # unknown
    "2": False,  # absent subscriber, temporary
    "3": True,  # absent subscriber, permanent
    "4": True,  # call barred by user
    "5": True,  # portability error
    "6": True,  # anti-spam rejection
    "7": False,  # handset busy
    "8": False,  # network error
    "9": True,  # illegal number (opted out)
    "10": True,  # illegal message
    "11": True,  # unroutable
    "12": True,  # destination unreachable
    "13": True,  # subscriber age restriction
    "14": True,  # number blocked by carrier
    "15": False,  # recipient's prepaid credit insufficient
    "16": False,  # gateway quota exceeded
    "50": True,  # entity filter
    "51": True,  # header filter
    "52": True,  # content filter
    "53": True,  # consent filter
    "54": True,  # regulation error
    "99": None,  # general error
}

# Plivo `ErrorCode` values.
_PLIVO: dict[str, bool | None] = {
    "10": True,  # invalid message
    "20": False,  # network error
    "30": True,  # spam detected
    "40": True,  # invalid source number
    "50": True,  # invalid destination number
    "60": True,  # loop detected
    "70": True,  # destination permanently unavailable
    "80": False,  # destination temporarily unavailable
    "90": True,  # no route available
    "100": True,  # prohibited by carrier
    "110": True,  # message too long
    "200": True,  # source number blocked by STOP
    "201": True,  # US toll-free to Canada blocked
    "1000": None,  # unknown error
}

# Sinch REST API delivery-report codes. Codes below 400 come from Sinch's SMPP
# table, which is not collected here.
# NOTE: the MMS codes 414-418 are left unclassified because which code means
# which MMS failure was not confirmed.
_SINCH: dict[str, bool | None] = {
    "402": True,  # unroutable
    "403": None,  # internal error
    "404": False,  # temporary delivery failure
    "405": True,  # unmatched template parameter
    "406": False,  # internal expiry
    "407": None,  # cancelled by user: not a delivery failure
    "408": True,  # internal reject
    "410": True,  # no default originator
    "411": True,  # too many parts
    "412": True,  # unprovisioned region
    "413": True,  # account blocked
}

# Infobip error ids, used only when a report carries no `permanent` flag.
_INFOBIP: dict[str, bool | None] = {
    "1": True,  # EC_UNKNOWN_SUBSCRIBER
    "5": False,  # EC_UNIDENTIFIED_SUBSCRIBER
    "6": False,  # EC_ABSENT_SUBSCRIBER_SM
    "9": True,  # EC_ILLEGAL_SUBSCRIBER
    "11": True,  # EC_TELESERVICE_NOT_PROVISIONED
    "12": True,  # EC_ILLEGAL_EQUIPMENT
    "13": False,  # EC_CALL_BARRED (Infobip's own flag)
    "21": False,  # EC_FACILITY_NOT_SUPPORTED
    "27": False,  # EC_ABSENT_SUBSCRIBER
    "31": False,  # EC_SUBSCRIBER_BUSY_FOR_MT_SMS
    "32": False,  # EC_SM_DELIVERY_FAILURE
    "33": False,  # EC_MESSAGE_WAITING_LIST_FULL
    "34": False,  # EC_SYSTEM_FAILURE
    "35": False,  # EC_DATA_MISSING
    "36": False,  # EC_UNEXPECTED_DATA_VALUE
    "256": False,  # EC_SM_DF_MEMORYCAPACITYEXCEEDED
    "352": True,  # EC_INVALID_REQUEST_DESTINATION
    "565": True,  # EC_CANNOT_RECEIVE_SC
    "573": True,  # EC_SC_BLOCKED_BY_END_USER
    "603": True,  # EC_CONTENT_BLOCKED
    "607": True,  # EC_REJECTED_SPAM_BY_OPERATOR
    "629": True,  # EC_DEST_ADDRESS_UNABLE_TO_RECEIVE_SMS
    "2048": False,  # EC_TIME_OUT
    "4098": False,  # EC_VP_EXPIRED
    "5492": True,  # EC_DUPLICATE_MESSAGE
}

# AWS End User Messaging `messageStatus` values that are failures.
_AWS: dict[str, bool | None] = {
    "BLOCKED": True,
    "CARRIER_UNREACHABLE": False,
    "INVALID": True,
    "INVALID_MESSAGE": True,
    "CARRIER_BLOCKED": True,
    "UNREACHABLE": False,
    "SPAM": True,
    "UNKNOWN": None,
    "PROTECT_BLOCKED": True,
    "TTL_EXPIRED": False,
}

ERROR_TABLES: Mapping[str, Mapping[str, bool | None]] = {
    "gsm-map": _GSM_MAP,
    "twilio-smpp": _TWILIO_SMPP,
    "smpp-command-status": _SMPP_COMMAND_STATUS,
    "twilio": _TWILIO,
    "vonage": _VONAGE,
    "plivo": _PLIVO,
    "sinch": _SINCH,
    "infobip": _INFOBIP,
    "aws": _AWS,
    # Bird's extended codes reuse the MAP numbering (1 unknown subscriber,
    # 34 system failure and so on).
    "bird": _GSM_MAP,
    "unknown": {},
}


def canonical_code(code: str) -> str:
    """Return the form of an error code used as a table key.

    Decimal text loses its leading zeros (``001`` becomes ``1``), ``0x`` hex
    becomes decimal text (``0x0000000b`` becomes ``11``), SMPP status names
    become their decimal value, and any other text is upper-cased.
    """
    text = code.strip()
    if len(text) > _MAX_NUMERIC_CODE_LENGTH:
        return text.upper()
    if text.isascii() and text.isdigit():
        return str(int(text))
    upper = text.upper()
    if upper.startswith("0X") and len(upper) > 2:
        digits = upper[2:]
        if digits.isascii() and all(c in "0123456789ABCDEF" for c in digits):
            return str(int(digits, 16))
    value = SMPP_COMMAND_STATUS_NAMES.get(upper)
    if value is not None:
        return str(value)
    return upper


def classify_code(table: str, code: str) -> bool | None:
    """Return whether ``code`` is a permanent failure according to ``table``.

    Args:
        table: Name of a table in :data:`ERROR_TABLES`.
        code: The code as the source wrote it.

    Returns:
        True or False where the table classifies the code; None for an
        unknown table, a code missing from the table, or a code the table
        marks as undecidable.
    """
    rows = ERROR_TABLES.get(table)
    if rows is None:
        return None
    return rows.get(canonical_code(code))
