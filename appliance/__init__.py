"""Switchboard: an on-prem appliance that gives every brand its own customer-service agent."""

__version__ = "0.1.0"
