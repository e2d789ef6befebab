"""What a command does, in ZenML terms: run pipelines on the active stack and collect what they decided."""
