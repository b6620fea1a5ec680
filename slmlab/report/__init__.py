"""Printed summaries, figures and HTML reports."""
