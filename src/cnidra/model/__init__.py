"""Pure data: devices, claim config schema (pydantic), attach plans and results. No I/O; imports
nothing of ours but errors.
"""
