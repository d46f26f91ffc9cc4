"""Model splits stage: prompts -> requests -> response cache -> backend -> parse -> rows or
failures.
"""
