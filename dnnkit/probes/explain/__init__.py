"""Explanations: the dynamic linear map W(x) of a B-cos network, input x gradient otherwise, PNGs,
and the grid pointing game."""
