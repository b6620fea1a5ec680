"""`slmlab serve`: the local web app over run stores (`data` reads them, `app` renders the pages)."""
