"""The API's security boundary: who may call what (:mod:`.auth`), from which origin and with which
content types (:mod:`.browser`), the login page of the web UI (:mod:`.login`), the token routes
(:mod:`.tokens_api`) and the audit log (:mod:`.audit`).
"""
