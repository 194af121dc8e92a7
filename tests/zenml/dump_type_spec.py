"""Print ZenML's own spec of a service connector type, without its prose descriptions.

Regenerates tests/fixtures/zenml-0.98-{azure,kubernetes,docker}-type.json from the real client
library:

    python -m venv /tmp/zenml && /tmp/zenml/bin/pip install zenml==0.98.0
    for type in azure kubernetes docker; do
        /tmp/zenml/bin/python tests/zenml/dump_type_spec.py $type > tests/fixtures/zenml-0.98-$type-type.json
    done

The Azure and Kubernetes SDKs are not needed: their modules are replaced by empty stand-ins,
since building a spec only needs ZenML's own models.
"""

import importlib.abc
import importlib.machinery
import json
import sys
import types


class _Anything:
    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return _Anything()

    def __getattr__(self, name):
        return _Anything()

    def __class_getitem__(cls, item):
        return cls


class _StandIns(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers every import under `azure` and `kubernetes` with a module of stand-ins."""

    def find_spec(self, fullname, path, target=None):
        if fullname.split(".")[0] in ("azure", "kubernetes"):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []
        module.__getattr__ = lambda attr: (
            (_ for _ in ()).throw(AttributeError(attr))
            if attr.startswith("__")
            else type(attr, (_Anything,), {"__module__": spec.name})
        )
        return module

    def exec_module(self, module):
        pass


sys.meta_path.insert(0, _StandIns())

import importlib  # noqa: E402

SPECS = {
    "azure": (
        "zenml.integrations.azure.service_connectors.azure_service_connector",
        "AZURE_SERVICE_CONNECTOR_TYPE_SPEC",
    ),
    "kubernetes": (
        "zenml.integrations.kubernetes.service_connectors.kubernetes_service_connector",
        "KUBERNETES_SERVICE_CONNECTOR_TYPE_SPEC",
    ),
    "docker": (
        "zenml.service_connectors.docker_service_connector",
        "DOCKER_SERVICE_CONNECTOR_TYPE_SPEC",
    ),
}
module_name, spec_name = SPECS[sys.argv[1]]
spec = getattr(importlib.import_module(module_name), spec_name)


def without_descriptions(value):
    if isinstance(value, dict):
        return {k: without_descriptions(v) for k, v in value.items() if k != "description"}
    if isinstance(value, list):
        return [without_descriptions(v) for v in value]
    return value


json.dump(without_descriptions(spec.model_dump(mode="json")), sys.stdout, indent=2)
print()
