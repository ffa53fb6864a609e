"""SIP capture: the box as a SIP endpoint recording plain calls and SIPREC sessions.

Pure parsing and decisions live in ``message``, ``metadata`` and ``roles`` (no pjsua2 import),
so they are tested and reused without a SIP stack; ``endpoint``, ``account``, ``call`` and
``tap`` wrap pjsua2.
"""
