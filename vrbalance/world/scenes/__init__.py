"""Scene builders, one module per scene (park, stairs; crowd by its own module)."""
