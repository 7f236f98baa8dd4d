from .sketch import GradientSketcher
