"""Model factories a spec can name (``source.factory``): real models rebuilt from their
weights, and small models that show what each check exists to catch."""
