"""Data: mask generators that work on any image (`masks`) and the preference-data format (`prefs`)."""
