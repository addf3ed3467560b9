"""Tests of the customer lifetime value models."""
