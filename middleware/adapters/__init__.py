"""Concrete implementations of the ports. Only ``bootstrap`` chooses and wires them."""
