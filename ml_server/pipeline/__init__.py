"""The analysis pipeline (docs/pipeline.md): decode → vad → transcribe → align → diarize →
prosody → emotion → result.

Each stage is a module (or package) with typed input → typed output; `ml_server.pipeline.run`
sequences them (`run_pipeline`). Importing a stage does not import the sequencer.
"""
