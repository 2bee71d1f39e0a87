"""A small chat backend: users register, start threads and post messages.

It is the application the example suite in ``examples/tests`` tests. Like
real application code it knows nothing about tests: every operation takes a
session from the factory it was given and commits. Run it with
``async_sessionmaker(engine, expire_on_commit=False)``.
"""
