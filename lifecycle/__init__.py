"""Plain, ZenML-free logic behind the pipeline steps: configuration, data, modelling, metrics, promotion.

Importing the package imports no ZenML; it arranges that when ZenML is imported, its configuration files are
written atomically (lifecycle/atomic_files.py): every process of the project runs this before ZenML starts a client.
"""

from lifecycle.atomic_files import make_zenml_config_writes_atomic

make_zenml_config_writes_atomic()
