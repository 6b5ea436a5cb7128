"""Request, response and stored shapes, kept apart."""
