"""Generated protobuf messages for the motive.v1 wire contract (schemas/motive.proto).

Regenerate with ``trainer-hooks/python/gen_proto.sh``; do not edit ``motive_pb2.py`` by hand.
"""
