"""The validating admission webhook: what needs code but only the object, refused at apply."""
