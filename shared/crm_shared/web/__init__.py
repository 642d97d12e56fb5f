from .app import create_service_app
from .auth import Principal, current_user, require_roles
from .blueprint import Blueprint

__all__ = ["create_service_app", "Principal", "current_user", "require_roles", "Blueprint"]
