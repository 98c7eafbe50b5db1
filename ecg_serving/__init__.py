"""How the ECG services meet the network, shared by both servers: how each listens (`server`,
uvicorn with timeouts), which outbound URLs it may reach (`net`, the SSRF guard) and how it
retries a failed outbound request (`backoff`).

Not part of `ecg_protocol`: the wire format is what the services say to each other, this is how
each one talks. Kept in a package of its own so that neither server imports the other.
"""
