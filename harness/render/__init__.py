"""Rendering stored results: tables as data with their writers, plots, filter grids and the HTML report. Never trains."""
