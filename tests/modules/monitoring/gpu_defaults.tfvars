# The root module's defaults on a g5.xlarge: everything on, no email.
