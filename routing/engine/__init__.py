"""The pure routing engine: plain data in, plain data out, no ORM, no clock, no global randomness.

Live routing (routing.services) and the pilot simulator (pilot.simulation) call these same functions.
"""
