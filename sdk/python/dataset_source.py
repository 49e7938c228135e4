# componentize-py looks for an exported resource's class in a module named
# after its interface: the dataset world's `generator` is here.
from barrage_plugin._export import Generator  # noqa: F401
