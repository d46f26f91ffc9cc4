"""Test doubles: a stand-in OpenAI-compatible server and a scripted backend (never used by the
toolkit itself).
"""
