"""Host notices: the host hears that a guest booked (「新しいご予約がありました」) or cancelled
(「ご予約がキャンセルされました」), at once (coalesced per date in a short window) or in one
email an hour (the digest), as the host chose (``users.notify_*``). See ``notices.py``.
"""
