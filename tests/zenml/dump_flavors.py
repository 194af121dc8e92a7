"""Print ZenML's own flavors of the stack components connector-hub serves, without prose.

Regenerates tests/fixtures/zenml-0.98-flavors.json from the real client library, and with
`--split DIR` writes each flavor to DIR/<type>/<name>.json, the files the server embeds
(src/stacks/flavors):

    tests/.venv/bin/python tests/zenml/dump_flavors.py > tests/fixtures/zenml-0.98-flavors.json
    tests/.venv/bin/python tests/zenml/dump_flavors.py --split src/stacks/flavors

Identifiers, sources, schemas and URLs are ZenML's facts; every `description` is left out.
Only ZenML's own modules are imported: the integrations' flavor classes do not need their
cloud SDKs.
"""

import json
import os
import sys

from zenml.integrations.registry import integration_registry
from zenml.stack.flavor_registry import FlavorRegistry

SERVED = {
    "artifact_store": {"local", "azure"},
    "orchestrator": {"local", "kubernetes", "azureml"},
    "container_registry": {"default", "azure", "dockerhub", "github"},
    "image_builder": {"local"},
    "step_operator": {"kubernetes", "azureml"},
}
INTEGRATIONS = ("azure", "kubernetes")


def without_descriptions(value):
    """Drops `description` annotations; fields that happen to be named so stay."""
    if isinstance(value, dict):
        return {
            k: named(v) if k in ("properties", "$defs") else without_descriptions(v)
            for k, v in value.items()
            if k != "description"
        }
    if isinstance(value, list):
        return [without_descriptions(v) for v in value]
    return value


def named(fields):
    return {name: without_descriptions(schema) for name, schema in fields.items()}


def flavor_models():
    for flavor in FlavorRegistry().builtin_flavors:
        yield flavor().to_model(integration="built-in", is_custom=False)
    for name in INTEGRATIONS:
        for flavor in integration_registry.integrations[name].flavors():
            yield flavor().to_model(integration=name, is_custom=False)


def served():
    dumped = []
    for model in flavor_models():
        if model.name in SERVED.get(model.type.value, ()):
            dumped.append(without_descriptions(model.model_dump(mode="json", exclude={"user"})))
    return sorted(dumped, key=lambda f: (f["type"], f["name"]))


def main():
    flavors = served()
    if len(sys.argv) == 3 and sys.argv[1] == "--split":
        for flavor in flavors:
            folder = os.path.join(sys.argv[2], flavor["type"])
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, flavor["name"] + ".json"), "w") as out:
                json.dump(flavor, out, indent=2)
                out.write("\n")
    else:
        json.dump(flavors, sys.stdout, indent=2)
        print()


main()
