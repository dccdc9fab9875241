"""The project's one YAML loader (pure, safe types only): a key given twice in one mapping is a ConfigError naming
the source, the key and both lines, instead of YAML's default of keeping the last one silently."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tasks.errors import ConfigError


class _Loader(yaml.SafeLoader):
    """yaml.SafeLoader; only used through `load_yaml_text`, which refuses duplicate keys before constructing."""


def _duplicate_key(root: yaml.Node) -> tuple[str, str, int, int] | None:
    """The first mapping key that appears twice in one mapping: (parent path, key, first line, second line)."""
    seen_nodes: set[int] = set()
    todo: list[tuple[yaml.Node, str]] = [(root, "")]
    while todo:
        node, path = todo.pop(0)
        if id(node) in seen_nodes:  # aliases share nodes (and may be recursive)
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for key_node, value_node in node.value:
                # `<<: *anchor` merge keys may repeat and may be overridden by explicit keys: YAML's own rules.
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else f"<{key_node.tag}>"
                line = key_node.start_mark.line + 1
                if key in first:
                    return path, key, first[key], line
                first[key] = line
                todo.append((value_node, f"{path}.{key}" if path else key))
        elif isinstance(node, yaml.SequenceNode):
            todo += [(item, f"{path}[{i}]") for i, item in enumerate(node.value)]
    return None


def load_yaml_text(text: str, source: str) -> Any:
    """The project's one YAML loader (safe types only): a key given twice in one mapping is a ConfigError naming
    the source, the key and both lines, instead of YAML's default of keeping the last one silently."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        dup = _duplicate_key(node)
        if dup is not None:
            parent, key, first, second = dup
            where = f"{parent}.{key}" if parent else key
            raise ConfigError(
                f"{source}: key {where!r} is given twice (lines {first} and {second})",
                observed=f"line {second} repeats {key!r}"
                + (f" inside {parent!r}" if parent else " at the top level")
                + "; YAML would keep only the last one and silently drop the other",
                hint=f"merge the two {key!r} entries into one (or delete the one you did not mean)",
            )
        return loader.construct_document(node)
    except yaml.YAMLError as e:
        raise ConfigError(
            f"{source} is not valid YAML",
            observed=str(e).replace("\n", " "),
            hint="fix the YAML syntax at the position shown",
        ) from None
    finally:
        loader.dispose()


def read_yaml(path: Path, what: str) -> Any:
    """Read a YAML file or raise ConfigError naming the file and the line (syntax errors, duplicate keys)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(
            f"{what} {path} does not exist", hint="check the path (relative to the configs directory)"
        ) from None
    except OSError as e:
        raise ConfigError(
            f"{what} {path} cannot be read", observed=str(e), hint="check the path and its permissions"
        ) from None
    return load_yaml_text(text, f"{what} {path}")
