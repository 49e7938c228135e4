# componentize-py looks for an exported resource's class in a module named
# after its interface: the codec world's `decoder` is here.
from barrage_plugin._export import Decoder  # noqa: F401
