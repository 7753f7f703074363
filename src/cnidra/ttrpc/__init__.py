"""A small general asyncio ttrpc client/server and NRI's connection multiplexer. Knows nothing of
NRI.
"""
