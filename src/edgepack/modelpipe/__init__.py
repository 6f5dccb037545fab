"""The model stages: a spec (models/NAME.yaml) -> export -> quantize -> validate.

Nothing here imports torch at import time: plans stay fast.
"""
