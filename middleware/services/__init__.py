"""Use cases over the ports. Never imports a concrete adapter: ``bootstrap`` hands them in."""
