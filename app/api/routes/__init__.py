"""HTTP routes, one module per concern (thin: the work is in app.services).

upload (generate-url, capacity) · process (request-process) · webhook (the ML server's result
callback) · status · health (ML server health, backend /health and /metrics) · export (captions)
· jobs (list, delete) · speakers (names, media) · storage (the embedded store's signed PUT/GET)
· openai (/v1/audio, the OpenAI-compatible one-call API).
"""
