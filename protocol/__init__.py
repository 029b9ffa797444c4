"""The conversation between the trusted grader and the untrusted sandbox.

Both sides import this package (and nothing of the grading engine): the sandbox to
encode its replies, the grader to decode them under limits and to validate each
reply's shape before anything in it is believed. Modules: `limits` (how much a reply
may hold), `scan` (the bounded structural check that runs before decoding), `codec`
(msgpack with plain-data extension types), `frames` (length-prefixed frames),
`messages` (operations and reply schemas), `text` (cleaning strings from the sandbox).
"""
