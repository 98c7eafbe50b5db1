"""How the ECG services are served over HTTP (uvicorn with timeouts), shared by both servers.

Not part of `ecg_protocol`: the wire format is what the services say to each other, this is how
each one listens. Kept in a package of its own so that neither server imports the other.
"""
