"""The pure routing engine: plain data in, plain data out, no ORM, no clock, no global randomness.

Live routing (routing.services) and the pilot simulator (routing.simulation) call these same functions.
"""
