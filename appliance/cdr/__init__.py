"""Call records from the PBX (CDR): every call, answered or not, as the PBX saw it.

``record`` turns one record from any supported source (the JSON API, Asterisk's
``Master.csv``, FreeSWITCH's ``mod_json_cdr``) into the normalised row the store keeps;
``asterisk`` reads Master.csv; ``store`` keeps rows by month; ``callbacks`` finds missed calls,
their callbacks, and joins rows to recorded calls.
"""
