"""The lesson's video architectures, built only from tensorlite.nn (installed as tensorlite.models).

Not built yet: no architecture is in this package until the models issue lands.
"""
