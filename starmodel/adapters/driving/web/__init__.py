"""The web adapter on FastHTML/Starlette: routes, request checks, sessions, page assets."""
