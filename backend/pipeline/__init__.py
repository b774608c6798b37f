"""Task -> description -> keywords: fetching images, reading texts, the VLM and keyword calls.

The pipeline knows nothing of ranking; the engine hands it tasks and stores what it returns.
"""
