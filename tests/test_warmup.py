"""``warm_up``: what a web worker or the RQ worker does before it serves."""
import gc

from app.warmup import warm_up


def test_warm_up_compiles_every_template_and_freezes_what_the_process_holds(app):
    gc.collect()
    frozen_before = gc.get_freeze_count()
    try:
        warm_up(app)
        cached = {key[1] for key in app.jinja_env.cache.keys()}
        assert set(app.jinja_env.list_templates()) <= cached
        assert gc.get_freeze_count() > frozen_before + 10_000  # the app, the mappers, the templates …
    finally:
        gc.unfreeze()  # the test process goes on making and dropping apps
