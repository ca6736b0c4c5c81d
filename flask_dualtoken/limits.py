"""Limits: the fixed bounds on what one request may carry or one process keep, in one
place; the views and the token parser enforce them, and the OpenAPI description publishes
them."""

from __future__ import annotations

#: A JSON body of a library route, in bytes.
MAX_BODY_BYTES = 16 * 1024
#: A token, in bytes: anything longer is refused unread.
MAX_TOKEN_BYTES = 8 * 1024
#: An access token's claims as JSON, in bytes: what keeps every token the library signs
#: under MAX_TOKEN_BYTES, headers, times and signature included.
MAX_CLAIMS_BYTES = 5 * 1024
#: A login username, in characters.
MAX_USERNAME_CHARS = 256
#: A login password, in characters: bounds the work a request can ask of the hasher.
MAX_PASSWORD_CHARS = 1024
#: A token's subject (the user id), in characters.
MAX_SUBJECT_CHARS = 256
#: A client's user agent as stored with its session, in characters.
MAX_USER_AGENT_CHARS = 256
#: A client's address: an IPv6 address with a zone id fits with room to spare.
MAX_ADDRESS_CHARS = 64
#: Sessions one process remembers an answer for in push revocation; Redis answers for any
#: beyond (docs/design.md, "Push revocation": memory).
MAX_REMEMBERED_SESSIONS = 100_000
