"""Lumen Goods' retail systems, a separate local HTTP service for the demo: users, orders and
products seeded from the τ-bench retail database, with τ-bench's retail tool semantics.

`store.py` keeps the documents in SQLite, `operations.py` is what each write does, `app.py`
serves them over HTTP; `appliance demo-backend retail` runs it under gunicorn.
"""
