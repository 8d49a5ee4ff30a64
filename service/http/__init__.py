"""HTTP transport: thin handlers over the decision core."""
