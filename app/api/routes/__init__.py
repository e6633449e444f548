"""One small router per concern; `app.api.main.create_app` mounts them."""
