"""Plain, ZenML-free logic behind the pipeline steps: configuration, data, modelling, metrics, promotion."""
