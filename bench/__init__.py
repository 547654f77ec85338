"""Interlock's benchmark suite (`make bench`): decision, allow path, floor, peers, grant round trip, rule scaling."""
