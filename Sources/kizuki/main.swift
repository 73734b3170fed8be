print("kizuki")
