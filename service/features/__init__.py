"""One definition of the model's features, shared by serving and training."""
