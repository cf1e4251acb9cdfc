"""One module per read model: state, evolve(), the entity an event touches, Redis codec."""
