"""The JSON API under /api/ (Django REST framework): the pages' objects and rules, for machines.

Every object is fetched through `relaytests.access` (a 404 to whoever may not see it), a server is
registered through the registration form and a run started through `relaytests.runs`, as on the pages.
"""
